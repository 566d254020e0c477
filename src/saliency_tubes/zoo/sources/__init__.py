"""Models from other libraries, behind the registry's adapters: torchvision
(``torchvision``; ``_torchvision`` makes its CUDA build import on a CPU-only torch),
pytorchvideo (``pytorchvideo``) and Hugging Face transformers (``huggingface``, whose
untrusted configs are bounded by ``hf_sizes``)."""
