"""Deep perceptual loss for image autoencoders and the predictors judging their embeddings.

"Improving Image Autoencoder Embeddings with Perceptual Loss" (IJCNN 2020) and "Pretraining Image
Encoders without Reconstruction via Feature Prediction Loss" (ICPR 2020): a convolutional (variational)
autoencoder trained with pixel loss, perceptual loss, or feature prediction loss; its frozen encoder's
embeddings are cached and judged by small predictors (linear, MLPs) on classification and object
positioning.
"""

LOSSES = ("pixel", "perceptual", "feature_prediction")
