"""Preference pairs, reward functions and the refusal detector behind reward and RL stages."""
