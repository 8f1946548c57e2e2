"""alignstack.eval"""
