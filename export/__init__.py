"""Exporting GAN generators as SavedModels and serving them (TF Serving layout and APIs)."""
