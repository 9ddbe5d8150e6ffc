"""
Benchmarks: chatd against a Twisted floor, ngircd and file-copy floors (issue 6).
"""
