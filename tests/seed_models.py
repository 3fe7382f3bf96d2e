"""The seed tutorial's three models, as written there (only `from tensorflow import keras`
became `import keras`, the Keras 3 spelling). Used to prove simplecnn's models are the seed's."""

import keras
from keras import layers


def sequential_model(input_shape):
    model = keras.Sequential(
        [  ## Input
            layers.Input(input_shape),
            ## 1st conv
            layers.Conv2D(64, 3, strides=1, activation="relu", padding="same"),
            layers.Conv2D(64, 3, strides=1, activation="relu", padding="same"),
            layers.MaxPool2D(),
            layers.BatchNormalization(),
            layers.Dropout(0.5),
            ## 2nd conv
            layers.Conv2D(128, 3, strides=1, activation="relu", padding="same"),
            layers.Conv2D(128, 3, strides=1, activation="relu", padding="same"),
            layers.MaxPool2D(),
            layers.BatchNormalization(),
            layers.Dropout(0.3),
            ## Classifier
            layers.GlobalMaxPool2D(),
            layers.Dense(128, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    return model


def functional_model(input_shape):
    inputs = keras.Input(input_shape)
    ## 1st conv
    x = layers.Conv2D(64, 3, strides=1, activation="relu", padding="same")(inputs)
    x = layers.Conv2D(64, 3, strides=1, activation="relu", padding="same")(x)
    x = layers.MaxPool2D()(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    ## 2nd conv
    x = layers.Conv2D(128, 3, strides=1, activation="relu", padding="same")(x)
    x = layers.Conv2D(128, 3, strides=1, activation="relu", padding="same")(x)
    x = layers.MaxPool2D()(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.3)(x)
    ## Classifier
    x = layers.GlobalMaxPool2D()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)

    model = keras.Model(inputs, outputs)
    return model


class SeedSimpleCNN(keras.Model):
    """The seed's subclassed model, unchanged: on Keras 3 `build()` leaves it unbuilt."""

    def __init__(self):
        super(SeedSimpleCNN, self).__init__()
        self.conv_block1 = keras.Sequential(
            [
                layers.Conv2D(64, 3, strides=1, activation="relu", padding="same"),
                layers.Conv2D(64, 3, strides=1, activation="relu", padding="same"),
                layers.MaxPool2D(),
                layers.BatchNormalization(),
                layers.Dropout(0.5),
            ],
            name="conv_block1",
        )
        self.conv_block2 = keras.Sequential(
            [
                layers.Conv2D(128, 3, strides=1, activation="relu", padding="same"),
                layers.Conv2D(128, 3, strides=1, activation="relu", padding="same"),
                layers.MaxPool2D(),
                layers.BatchNormalization(),
                layers.Dropout(0.3),
            ],
            name="conv_block2",
        )
        self.classifier = keras.Sequential(
            [
                layers.GlobalMaxPool2D(),
                layers.Dense(128, activation="relu"),
                layers.Dense(1, activation="sigmoid"),
            ],
            name="classifier",
        )

    def call(self, input_tensor, training=False):
        x = self.conv_block1(input_tensor)
        x = self.conv_block2(x)
        return self.classifier(x)
