"""Data cleaning and per-shooting-angle centroids (the paper, §3.3).

Per landmark: near-duplicates removed first (a photo whose cosine similarity to a photo
already kept reaches `near_duplicate_similarity` is "redundant", in the paper's word: the
same view uploaded twice, resized or recompressed, which would count twice toward a
cluster's size and pull its centroid); then agglomerative clustering of its L2-normalised
embeddings on cosine distance, cut at a distance threshold; clusters with at least
`min_cluster_size` images are "valid" (one per shooting angle); images outside valid
clusters are removed from the cleaned dataset; each valid cluster's centroid is its
L2-normalised mean embedding, and its medoid (the member photo nearest that mean direction)
is the cluster's reference photo for recognition (`CleaningResult.references`). A landmark
with no valid cluster at all keeps one centroid of all its images (or, with
`keep_landmarks_without_cluster=False`, is dropped); either way every landmark that lost
images or was kept whole is a row of the report (`CleaningResult.report`), with the reason.

The clustering itself is SciPy's `scipy.cluster.hierarchy` (C implementation, the
reference for agglomerative clustering). The modules: `config` (the settings), `clusters`
(one landmark), `result` (what was done, in figures and words), `dataset` (every landmark
of a dataset, in bounded memory and in parallel processes).
"""
