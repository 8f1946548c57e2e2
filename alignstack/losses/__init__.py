"""Pure loss functions of tensors (imports only ``torch`` and the standard library)."""
