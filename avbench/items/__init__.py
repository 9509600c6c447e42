"""Reading a suite's items: audio and frames from the world or a data root, the loader, and the media scoring reads."""
