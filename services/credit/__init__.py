"""The credit service: credit levels, graded management and fake-traffic monitoring (Art.
7¶2, 12, 13, 17¶2).
"""
