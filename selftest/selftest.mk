check-unit check-integ:
