"""augframe_rhythm: the rhythm-only baseline generator ("rhythm-transplant").

It re-times a source ECG's beats to the R-peak times of a real recording of the target class
(:mod:`augframe.retime`) and changes nothing else: no diffusion, no learned model. It is the
baseline that shows what a learned generator adds over re-timing alone.
"""
