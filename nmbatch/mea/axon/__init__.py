"""Axon (AP) tracking, step 10 of the MEA pipeline: a 3D CNN on electrical images.

``network`` is the model, ``dense`` its exact whole-image evaluation, ``cubes`` the
cube-by-cube reference, ``tracking`` and ``onh`` the post-processing, ``model_file``
reads a lab's state dict; ``planted``, ``training_data`` and ``train`` make the
synthetic ground truth and train the bundled demo model
(``python -m nmbatch.mea.axon train``).
"""
