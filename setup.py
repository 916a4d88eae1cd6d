from setuptools import find_packages, setup

from geproxy import __version__

setup(
    name="geproxy",
    version=__version__,
    description="A Redis Cluster proxy on gevent: one endpoint for a whole cluster",
    packages=find_packages(include=["geproxy", "geproxy.*"]),
    python_requires=">=3.9",
    install_requires=[line.strip() for line in open("requirements.txt") if line.strip() and not line.startswith("#")],
    entry_points={"console_scripts": ["geproxy = geproxy.cli:main"]},
)
