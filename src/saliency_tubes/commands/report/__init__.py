"""The pages: one video's ``report.html`` (``video``, its page ``page`` and side panel
``facts``), a batch's ``index.html`` (``index``, with ``thumbs``), all filled from the
package's ``templates/`` in one safe step (``templating``)."""
