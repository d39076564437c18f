"""mmcam: what image captioners and VQA models look at."""
