"""
One gateway node: its parts built from the settings (L{parts}), the service
that orders their start, listening, drain and stop (L{service}), what it
listens with once it knows its ports (L{listening}), and how it lets its
client connections go (L{shutdown}).
"""
