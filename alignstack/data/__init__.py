"""alignstack.data"""
