"""Deep perceptual loss for image autoencoders and the predictors judging their embeddings.

"Improving Image Autoencoder Embeddings with Perceptual Loss" (IJCNN 2020) and "Pretraining Image
Encoders without Reconstruction via Feature Prediction Loss" (ICPR 2020): a convolutional (variational)
autoencoder trained with pixel loss, perceptual loss, or feature prediction loss; its frozen encoder's
embeddings are cached and judged by small predictors (linear, MLPs) on classification and object
positioning.

The ICPR paper's six procedures are named <encoder input>-<decoder output>-<loss> (I: image, F: the loss
network's features; PW: pixel-wise, PS: perceptual similarity, FP: feature prediction); each is one
``loss`` value of the stage (guspih/Perceptual-Autoencoders: ``FourLayerCVAE`` without / with a perceptual
net, ``FeaturePredictorCVAE``, ``FeatureAutoencoder``, ``PerceptualFeatureToImgCVAE``, ``FeatureToImgCVAE``).
"""

# loss value → (encoder input, decoder output, reconstruction loss, the ICPR paper's name)
PROCEDURES = {
    "pixel": ("image", "image", "pixel", "I-I-PW"),
    "perceptual": ("image", "image", "perceptual", "I-I-PS"),
    "feature_prediction": ("image", "features", "feature_prediction", "I-F-FP"),
    "feature_autoencoder": ("features", "features", "feature_prediction", "F-F-FP"),
    "feature_to_image_perceptual": ("features", "image", "perceptual", "F-I-PS"),
    "feature_to_image_pixel": ("features", "image", "pixel", "F-I-PW"),
}
LOSSES = tuple(PROCEDURES)


def uses_loss_network(loss: str) -> bool:
    """Whether a procedure runs the loss network (for its targets, its loss or its encoder's input)."""
    enc, dec, rec, _ = PROCEDURES[loss]
    return enc == "features" or dec == "features" or rec == "perceptual"
