"""EPUB CFIs exactly as epub.js 0.3 makes and reads them.

dom (the EPUB's DOM text nodes, as a browser builds them) → grammar (CFI strings) → locations
(locations.generate/save, percentages) → resolve (CFI → DOM position) → align (our chapter text ↔ CFIs).
"""
