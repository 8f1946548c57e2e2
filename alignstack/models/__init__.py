"""alignstack.models"""
