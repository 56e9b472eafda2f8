"""Where cells run besides the driver's own process (DESIGN.md "Cells: the unit that scales out").

``ray_task`` is what runs on a Ray worker (one cell: start its engine, run it, stream its
records back); ``ray_driver`` is the driver's ``ray.wait`` loop that writes each cell's
results into the run folder as they arrive. Nothing here is imported unless the run asks
for ``--executor ray``, so that a local run never imports Ray.
"""
