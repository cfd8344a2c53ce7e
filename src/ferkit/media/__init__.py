"""Decoding under budgets: every image and video a user or client hands ferkit is opened
here, within memory, pixel, stream, duration and frame caps, and refused with a message
that names the file and the limit. The one place to audit for hostile files."""
