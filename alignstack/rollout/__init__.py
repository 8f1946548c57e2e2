"""alignstack.rollout"""
