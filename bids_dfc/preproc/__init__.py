"""nipype-free image and signal maths, from the raw BOLD and T1w to the denoised BOLD."""
