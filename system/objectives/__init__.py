"""Losses and metrics as functions of tensors: shortcut forcing (Eq. 7), the tokenizer loss (Eq. 5), running-RMS
loss normalisation, LPIPS, PSNR.

`loss, metrics = shortcut_loss(model, z1, actions, cfg, step)`: testable with a tiny model or a stand-in function.
Imports the model package, never the reverse; holds no optimiser and no training state.
"""
