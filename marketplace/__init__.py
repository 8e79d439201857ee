"""marketplace"""
