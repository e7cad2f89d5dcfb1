"""bookreader: import books, find drawable descriptions, make pictures, serve epub.js locations."""

__version__ = "0.1.0"
