"""alignstack.methods"""
