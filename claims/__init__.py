"""Claims Specialist: the claims domain shared by training and serving."""
