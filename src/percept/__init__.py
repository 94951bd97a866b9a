"""percept: deep perceptual features — explanations, similarity, perceptual loss."""
__version__ = "0.1.0"
