"""Display: what people read.

Times in the operators' time zone and masked personal data (phone numbers, addresses, tokens).
May import core only.
"""
