"""ivr: an outbound survey IVR engine on Asterisk.

A call flows campaign -> dialer -> Asterisk -> AGI -> survey -> speech -> store -> report;
each step is one subpackage of this package.
"""

__version__ = "0.1.0"
