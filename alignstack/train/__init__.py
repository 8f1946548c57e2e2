"""alignstack.train"""
