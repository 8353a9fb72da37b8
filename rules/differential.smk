# Differential abundance: MS vs household controls (issue 4).
