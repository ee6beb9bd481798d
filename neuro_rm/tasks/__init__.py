"""The tasks the hybrid core runs (speaker authentication, faces, stylized diffusion), each a small module
describing its data, model and stages, and the one lifecycle runner they share (``tasks.runner``)."""
