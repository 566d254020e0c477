"""The zoo's own networks: 3D-ResNet (``resnet3d``), 3D-DenseNet (``densenet3d``), the
embedded tiny CNN (``tiny``) and tiny video ViT (``tiny_vit``), and their shared weight
initialisation (``initialise``)."""
