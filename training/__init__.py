"""Training and evaluation of HDcycleGAN models; imports the core, never the reverse."""
