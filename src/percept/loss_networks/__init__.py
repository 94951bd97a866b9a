"""Which network makes the best loss network: a grid of loss networks × extraction points, each cell
trained and scored on one downstream task ("A Systematic Performance Analysis of Deep Perceptual Loss
Networks", arXiv 2302.04032), and the paper's analysis (ranks, correlation with ImageNet accuracy)."""
