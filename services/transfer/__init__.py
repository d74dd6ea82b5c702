"""The transfer service: transfers and privilege grants of accounts (Art. 11, 17¶3).
"""
