"""
Reference servers the benchmark measures chatd against.
"""
