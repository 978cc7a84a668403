"""Captioning backends: template, tags, BLIP and BLIP-2, behind one Captioner interface."""
