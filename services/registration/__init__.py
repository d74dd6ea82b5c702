"""The registration service: the public account and its lifecycle (Art. 2, 6, 7, 8¶3, 10,
11¶3, 15, 17¶2).
"""
