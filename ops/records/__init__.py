"""Records: trades, analyses, positions, and the intake that writes them.

The trading, API and demo code build on this package; it never imports them.
"""
