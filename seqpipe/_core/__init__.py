"""Internals shared by every layer of seqpipe: lazy package exports, argument checks,
atomic file writes, index normalisation, OpenCV's lazy import and the hooks through which
a higher layer provides a method of a lower one. Imports no seqpipe package."""
