"""The verification service: real-name identity, profile checks, qualifications, badges and
disclosure (Art. 5, 8¶1-2, 9).
"""
