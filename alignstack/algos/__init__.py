"""Pure algorithmic pieces of tensors: advantages, KL, reward transforms, selection, NEFTune's noise."""
