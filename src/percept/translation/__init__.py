"""Unpaired, appearance-preserving object shape translation (Bollens, Tuytelaars, Oramas, ICIP 2019):
two VAEs sharing their innermost layers (one latent space), a discriminator per domain, and the losses
reconstruction + KL, GAN, cycle A→B→A and appearance similarity (the project's deep perceptual metric, or
colour statistics). ``data`` makes the offline two-domain set, ``models``/``losses``/``training`` the
system, ``evaluate`` its scores (shape translated, appearance preserved)."""
