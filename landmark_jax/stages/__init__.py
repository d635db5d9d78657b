"""Offline steps between training and serving, each writing one folder: embed a source with
a trained model (`embed`), clean each landmark's photos into per-shooting-angle clusters
(`cleaning`), write the cleaned dataset and centroids and build the index from them
(`centroids`), add new landmarks to a built index (`new_landmarks`)."""
