"""DeepMedix-R1: grounded chest X-ray reasoning, end to end."""

__version__ = "0.1.0"
