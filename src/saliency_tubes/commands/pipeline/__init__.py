"""The steps every command shares: decode and explain (``explaining``), one tube on the
video's timeline (``track``), what each output video shows and the one encode pass
(``drawing``, ``sizing``), the manifest (``manifest``), the output folder and its lock
(``outputs``, ``lock``), what a command returns (``result``, shown in Jupyter by
``display``) and the model line of every page (``model_line``)."""
