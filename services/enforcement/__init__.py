"""The enforcement service: violations, measures, complaints and appeals, regulator reports
(Art. 14, 18-21).
"""
