"""A synthetic clinical world: an invented knowledge base written in every dataset's
original layout, so that learning can be measured offline (python -m medalign.world)."""
