"""benefits: benefit policies and the hospital split (pooled fund, serious illness, medical assistance).

split.py and policy.py are pure; policies.py stores the versioned policies; routes.py is the operator API.
"""
