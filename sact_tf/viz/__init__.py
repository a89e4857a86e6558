"""Ponder cost maps: HDF5 export, pictures, photos of the user's own."""
